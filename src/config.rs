//! Runtime configuration: flags and environment variables, with the SPEC's defaults.

use clap::{Parser, ValueEnum};

use crate::model::activation::Clock;
use crate::model::projection::{IdentityTemplates, DEFAULT_TEMPLATE};
use crate::model::validate::Limits;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Command line of the `kube-lighthouse` binary. With no arguments it reconciles the cluster
/// of the current kubeconfig (or the in-cluster config) with the documented defaults
/// (docs/install.md, "Values").
#[derive(Clone, Debug, Parser)]
#[command(
    name = "kube-lighthouse",
    version,
    about = "Azure Lighthouse on Kubernetes: delegated namespace access as RBAC"
)]
pub struct Config {
    /// RBAC user name of a managing-tenant user or service principal.
    #[arg(long, env = "KUBE_LIGHTHOUSE_USER_TEMPLATE", default_value = DEFAULT_TEMPLATE, value_parser = template)]
    pub user_template: String,

    /// RBAC group name of a managing-tenant group.
    #[arg(long, env = "KUBE_LIGHTHOUSE_GROUP_TEMPLATE", default_value = DEFAULT_TEMPLATE, value_parser = template)]
    pub group_template: String,

    /// Most definitions one subscription namespace may hold.
    #[arg(long, env = "KUBE_LIGHTHOUSE_MAX_DEFINITIONS_PER_SUBSCRIPTION", default_value_t = 200)]
    pub max_definitions_per_subscription: usize,

    /// Most authorizations one definition may hold.
    #[arg(long, env = "KUBE_LIGHTHOUSE_MAX_AUTHORIZATIONS_PER_DEFINITION", default_value_t = 400)]
    pub max_authorizations_per_definition: usize,

    /// Reconciles run in parallel, per kind: enough to onboard many customers quickly
    /// without opening a connection per delegation.
    #[arg(long, env = "KUBE_LIGHTHOUSE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Log format.
    #[arg(long, env = "KUBE_LIGHTHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Port of the Prometheus `/metrics` endpoint (0 disables it).
    #[arg(long, env = "KUBE_LIGHTHOUSE_METRICS_PORT", default_value_t = 8080)]
    pub metrics_port: u16,

    /// Port of the `/healthz` and `/readyz` probes (0 disables them).
    #[arg(long, env = "KUBE_LIGHTHOUSE_HEALTH_PORT", default_value_t = 8081)]
    pub health_port: u16,

    /// Port of the TLS server: the validating admission webhook (`POST /validate`) and the
    /// views API (`/apis/view.kubelighthouse.io/v1alpha1`).
    #[arg(long, env = "KUBE_LIGHTHOUSE_WEBHOOK_PORT", default_value_t = 9443)]
    pub webhook_port: u16,

    /// Hub mode (docs/fleet.md): instead of reconciling this cluster, follow the reports of the
    /// customer clusters its `ClusterProfile`s (`multicluster.x-k8s.io`) name, and serve the
    /// views of the whole fleet. Off by default: with no arguments the binary reconciles.
    #[arg(long, env = "KUBE_LIGHTHOUSE_HUB", default_value_t = false, action = clap::ArgAction::Set)]
    pub hub: bool,

    /// Hub mode: the managing tenants (GUIDs) whose reports the hub reads in every cluster.
    #[arg(long, env = "KUBE_LIGHTHOUSE_HUB_TENANTS", value_delimiter = ',')]
    pub hub_tenants: Vec<String>,

    /// Hub mode: the Cluster Inventory API's credential providers file (JSON: `providers`,
    /// each a `name` and an `execConfig`), matched against each profile's access providers.
    #[arg(long, env = "KUBE_LIGHTHOUSE_HUB_PROVIDER_FILE")]
    pub hub_provider_file: Option<std::path::PathBuf>,

    /// Hub mode: the namespace whose ClusterProfiles the hub follows (Open Cluster Management
    /// puts the profiles bound to a consumer in its namespace); all namespaces when not set.
    #[arg(long, env = "KUBE_LIGHTHOUSE_HUB_NAMESPACE")]
    pub hub_namespace: Option<String>,

    /// Hub mode: milliseconds between two reads of each report (and of the ClusterProfiles).
    #[arg(long, env = "KUBE_LIGHTHOUSE_HUB_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub hub_poll_ms: u64,

    /// PEM certificate of the TLS server. It is served only with both it and the key.
    #[arg(long, env = "KUBE_LIGHTHOUSE_WEBHOOK_CERT")]
    pub webhook_cert: Option<std::path::PathBuf>,

    /// PEM private key of the TLS server.
    #[arg(long, env = "KUBE_LIGHTHOUSE_WEBHOOK_KEY")]
    pub webhook_key: Option<std::path::PathBuf>,

    /// Most SubjectAccessReviews one admission request asks about its author's authority
    /// (docs/reference.md); a request that would need more is refused, naming the limit.
    #[arg(long, env = "KUBE_LIGHTHOUSE_AUTHORITY_MAX_QUESTIONS", default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub authority_max_questions: u32,

    /// Longest time, in milliseconds, one admission request spends on its author's
    /// authority; then it is refused, naming the limit. Keep it well under the webhook's
    /// `timeoutSeconds` (the chart sets it 4 s under), so the author gets the reason rather
    /// than the API server's timeout.
    #[arg(long, env = "KUBE_LIGHTHOUSE_AUTHORITY_DEADLINE_MS", default_value_t = 6_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub authority_deadline_ms: u64,

    /// Name of the ValidatingWebhookConfiguration that sends RoleBindings to this webhook
    /// (the chart's: the release's full name). User Access Administrator is materialized only
    /// while it exists, covers RoleBindings in every delegated namespace with failure policy
    /// Fail, and this process serves the webhook (docs/roles.md); unset: never.
    #[arg(long, env = "KUBE_LIGHTHOUSE_WEBHOOK_CONFIGURATION")]
    pub webhook_configuration: Option<String>,

    /// PEM CA of the admission webhook's callers: when set, `POST /validate` and `POST /mutate`
    /// are served only to a client certificate it signed for client authentication (the API
    /// server's, from its admission configuration's `kubeConfigFile`); others get 401/403.
    /// Unset: any caller (docs/install.md, "Admission clients").
    #[arg(long, env = "KUBE_LIGHTHOUSE_ADMISSION_CLIENT_CA")]
    pub admission_client_ca: Option<std::path::PathBuf>,

    /// Common names the admission client certificate may have (comma-separated); empty: any
    /// name the admission client CA signed. Only with `--admission-client-ca`.
    #[arg(
        long,
        env = "KUBE_LIGHTHOUSE_ADMISSION_CLIENT_NAMES",
        value_delimiter = ',',
        requires = "admission_client_ca"
    )]
    pub admission_client_names: Vec<String>,

    /// Leader election on the Lease `kube-lighthouse` (docs/reliability.md): only its holder reconciles
    /// and writes; every replica serves admission. `false` only for a single replica.
    #[arg(long, env = "KUBE_LIGHTHOUSE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the Lease: the controller's own (the chart passes the pod's namespace
    /// through the Downward API); default: the kubeconfig's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Seconds a stopping replica keeps serving admission and the views after SIGTERM, every
    /// response marked `Connection: close`, while Kubernetes takes it out of the Services; it
    /// then closes idle connections and lets in-flight requests finish (at most 10 s more). The
    /// chart sets its `shutdownDelaySeconds`; 0 stops accepting at once.
    #[arg(long, env = "KUBE_LIGHTHOUSE_SHUTDOWN_DELAY", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub shutdown_delay_seconds: u64,

    /// Seconds a leader's Lease lasts without renewal: a leader that dies is replaced after
    /// at most this long (docs/reliability.md: 15 s).
    #[arg(long, env = "KUBE_LIGHTHOUSE_LEASE_DURATION", default_value_t = 10, value_parser = clap::value_parser!(u64).range(5..=60))]
    pub lease_duration_seconds: u64,

    /// Serve the views API (docs/install.md, "The views API") on the TLS server, for an APIService to point at.
    /// Needs read access to `kube-system/extension-apiserver-authentication`.
    #[arg(long, env = "KUBE_LIGHTHOUSE_VIEWS", default_value_t = true, action = clap::ArgAction::Set)]
    pub views: bool,
    /// How long a RoleActivation waits for an approver before it times out, in seconds
    /// (docs/just-in-time.md: 24 h).
    #[arg(long, env = "KUBE_LIGHTHOUSE_ACTIVATION_APPROVAL_TIMEOUT", default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(1..))]
    pub activation_approval_timeout: u32,

    /// TEST ONLY. Divides every activation's duration and the approval timeout, so that a
    /// 30-minute activation (the policy minimum, still enforced as written) lasts seconds in
    /// a test. Never set it in production: it shortens access, never lengthens it, but
    /// `status.expiresAt` then lies about the policy's intent. Logged as a warning at start.
    #[arg(long, env = "KUBE_LIGHTHOUSE_TEST_TIME_SCALE", default_value_t = 1, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub test_time_scale: u32,

    /// The sign-in broker's issuer URL: the public HTTPS URL of the TLS server followed by
    /// `/federation` (e.g. `https://lighthouse.example.com/federation`). Set, every replica
    /// serves the broker's discovery, JWKS and token exchange there (docs/install.md, "The
    /// sign-in broker"); unset, the broker is off.
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_ISSUER")]
    pub federation_issuer: Option<String>,

    /// `aud` of the tokens the broker issues: the audience the API server's JWT authenticator
    /// for the broker expects.
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_AUDIENCE", default_value = "kube-lighthouse")]
    pub federation_audience: String,

    /// Longest life of an issued token, in seconds (never past the subject token's expiry).
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_MAX_LIFETIME_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u32).range(60..=86_400))]
    pub federation_max_lifetime_seconds: u32,

    /// The managing tenants' authority, `{tenantId}` standing for the tenant: a subject
    /// token's `iss` must be it, and its keys are found through its discovery document.
    /// Change it for sovereign clouds (e.g. `https://login.microsoftonline.us/{tenantId}/v2.0`).
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_AUTHORITY", default_value = crate::federation::core::DEFAULT_AUTHORITY)]
    pub federation_authority: String,

    /// The audiences a subject token may have (comma-separated): the application (client) ID
    /// or ID URI the engineers request their Entra ID token for. Required with the broker.
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_SUBJECT_AUDIENCES", value_delimiter = ',')]
    pub federation_subject_audiences: Vec<String>,

    /// Only these managing tenants (comma-separated tenant IDs) may exchange, among those a
    /// delegation in force names; empty: every delegated tenant.
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_TENANTS", value_delimiter = ',')]
    pub federation_tenants: Vec<String>,

    /// The Secret, in the controller's namespace, that holds the broker's signing keys; the
    /// leader creates and rotates it, every replica reads it.
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_KEYS_SECRET", default_value = "kube-lighthouse-federation-keys")]
    pub federation_keys_secret: String,

    /// Seconds between two signing keys. A new key is published a quarter of this (at most a
    /// minute) before it signs; an old one is kept until the tokens it signed have expired.
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_KEY_ROTATION_SECONDS", default_value_t = 604_800, value_parser = clap::value_parser!(u32).range(4..))]
    pub federation_key_rotation_seconds: u32,

    /// Most token exchanges one replica answers at a time; beyond it, `POST /federation/token`
    /// is answered at once with 503 and `Retry-After: 1` (load shedding).
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_MAX_CONCURRENT_EXCHANGES", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub federation_max_concurrent_exchanges: u32,

    /// PEM CA certificates trusted for the authorities' HTTPS, besides the system's (a
    /// private authority; the local control plane's issuers).
    #[arg(long, env = "KUBE_LIGHTHOUSE_FEDERATION_AUTHORITY_CA")]
    pub federation_authority_ca: Option<std::path::PathBuf>,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "KUBE_LIGHTHOUSE_LOG", default_value = "info")]
    pub log_level: String,
}

fn template(s: &str) -> Result<String, String> {
    IdentityTemplates::check(s).map(|()| s.to_string())
}

impl Config {
    /// The identity templates of `--user-template` and `--group-template`.
    pub fn templates(&self) -> IdentityTemplates {
        IdentityTemplates { user: self.user_template.clone(), group: self.group_template.clone() }
    }

    /// The validation limits of the `--max-*` flags.
    pub fn limits(&self) -> Limits {
        Limits {
            max_definitions_per_subscription: self.max_definitions_per_subscription,
            max_authorizations_per_definition: self.max_authorizations_per_definition,
        }
    }
}

impl Config {
    /// The limits of the author's-authority check of `--authority-*`.
    pub fn authority_limits(&self) -> crate::model::authority::Limits {
        crate::model::authority::Limits {
            max_questions: usize::try_from(self.authority_max_questions).unwrap_or(usize::MAX),
            deadline: std::time::Duration::from_millis(self.authority_deadline_ms),
        }
    }

    /// The clock of activations (docs/just-in-time.md).
    pub fn activation_clock(&self) -> Clock {
        Clock {
            approval_timeout: jiff::SignedDuration::from_secs(i64::from(self.activation_approval_timeout)),
            scale: self.test_time_scale,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["kube-lighthouse"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_means_the_spec_defaults() {
        let c = Config::default();
        assert_eq!(c.templates(), IdentityTemplates::default());
        assert_eq!(c.limits(), Limits::default());
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.activation_clock(), Clock::default(), "24 h to approve, real time");
        assert_eq!(c.authority_limits(), crate::model::authority::Limits::default());
        assert_eq!(c.webhook_configuration, None, "User Access Administrator is withheld unless configured");
        assert_eq!(c.federation_issuer, None, "the sign-in broker is off unless configured");
        assert_eq!(c.federation_max_lifetime_seconds, 900, "issued tokens live 15 minutes at most");
        assert_eq!(c.federation_authority, "https://login.microsoftonline.com/{tenantId}/v2.0");
    }

    #[test]
    fn templates_without_placeholders_are_refused() {
        assert!(Config::try_parse_from(["kube-lighthouse", "--user-template", "{principalId}"]).is_err());
        let c = Config::try_parse_from(["kube-lighthouse", "--group-template", "g:{tenantId}:{principalId}"])
            .expect("valid");
        assert_eq!(c.templates().group, "g:{tenantId}:{principalId}");
    }
}
