//! `kubectl lighthouse credential`: a client-go exec credential plugin for sign-in through
//! kube-lighthouse's federation broker (docs/install.md, "Sign-in through kube-lighthouse").
//!
//! It owns the engineer's side of the token exchange: the subject token (the engineer's own
//! Entra ID token, from a command they already use such as `kubelogin get-token`, or a file),
//! the broker's discovery document (so the only URL typed is the issuer's), the RFC 8693
//! exchange ([`super::broker`]), a per-broker, per-identity cache of the issued token, and the
//! `ExecCredential` on stdout that kubectl (client-go) reads.
//!
//! What it decides is pure and unit-tested here: reading the subject token out of a command's
//! output, the identity it names (the cache key), the cache's freshness rule, the exec
//! information kubectl passes (`KUBERNETES_EXEC_INFO`), and the `ExecCredential` printed.
//! [`run`] only reads, calls and writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::broker::{self, BrokerError};
use super::cli::CredentialArgs;
use super::PluginError;

/// The exec credential API version answered when kubectl does not say (client-go's current one).
pub const EXEC_API_V1: &str = "client.authentication.k8s.io/v1";
/// The previous exec credential API version, still answered when kubectl asks for it.
pub const EXEC_API_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// A cached token is used only while it has more than this left: kubectl gets a token that
/// outlives the request it is about to make, and a fresh one is fetched shortly before expiry.
pub const REFRESH_MARGIN: SignedDuration = SignedDuration::from_secs(60);

/// Why the credential could not be obtained. Each message says what the engineer can check.
#[derive(Debug, Error)]
pub enum CredentialError {
    /// `KUBERNETES_EXEC_INFO` is not an ExecCredential kubectl would send.
    #[error(
        "KUBERNETES_EXEC_INFO is not an ExecCredential ({0}); this command is meant to be run by kubectl from a kubeconfig user entry (kubectl lighthouse login writes one)"
    )]
    ExecInfo(String),
    /// The token command could not be started.
    #[error("the token command {command:?} could not be started: {source}")]
    CommandStart {
        /// The command line as configured.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token command exited unsuccessfully (its own messages went to stderr above).
    #[error(
        "the token command {command:?} failed ({status}); run it yourself to see why (are you signed in to your own tenant, e.g. az login?)"
    )]
    CommandFailed {
        /// The command line as configured.
        command: String,
        /// Its exit status.
        status: String,
    },
    /// The token file could not be read.
    #[error("the token file {path}: {source}")]
    TokenFile {
        /// The path as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command's output or the file holds no token this plugin recognizes.
    #[error(
        "{from} gave no token: expected a JWT, or JSON with an ExecCredential's status.token, accessToken (az) or access_token"
    )]
    NoToken {
        /// Where the token was looked for (`the token command "…"` or `the token file …`).
        from: String,
    },
    /// The token is not a JWT whose claims name an identity.
    #[error(
        "{from} gave a token that is not a JWT with claims ({reason}); the broker exchanges JWTs of your own tenant"
    )]
    NotAJwt {
        /// Where the token came from.
        from: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker's discovery or exchange failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// No cache directory is known for this user (`--cache-dir` names one).
    #[error("no cache directory for this user: pass --cache-dir or --no-cache")]
    NoCacheDir,
}

impl From<CredentialError> for PluginError {
    fn from(e: CredentialError) -> Self {
        PluginError::Credential(e.to_string())
    }
}

/// What kubectl tells an exec plugin in `KUBERNETES_EXEC_INFO` (an `ExecCredential` with only
/// a spec): the API version to answer with, and whether a terminal is there to interact with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    /// `client.authentication.k8s.io/v1` or `…/v1beta1`.
    pub api_version: String,
    /// Whether the plugin may prompt on stdin (kubectl's `spec.interactive`).
    pub interactive: bool,
}

impl ExecInfo {
    /// The exec information from the variable's value; without it (the plugin run by hand),
    /// `v1` and interactive.
    ///
    /// # Errors
    /// [`CredentialError::ExecInfo`] when the value is not an ExecCredential of a version
    /// this plugin answers.
    pub fn parse(value: Option<&str>) -> Result<Self, CredentialError> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(ExecInfo { api_version: EXEC_API_V1.into(), interactive: true });
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Info {
            api_version: Option<String>,
            kind: Option<String>,
            #[serde(default)]
            spec: Spec,
        }
        #[derive(Default, Deserialize)]
        struct Spec {
            #[serde(default)]
            interactive: bool,
        }
        let info: Info = serde_json::from_str(value).map_err(|e| CredentialError::ExecInfo(e.to_string()))?;
        if info.kind.as_deref().is_some_and(|k| k != "ExecCredential") {
            return Err(CredentialError::ExecInfo(format!("kind {:?}", info.kind.unwrap_or_default())));
        }
        let api_version = match info.api_version.as_deref() {
            None => EXEC_API_V1.to_string(),
            Some(v @ (EXEC_API_V1 | EXEC_API_V1BETA1)) => v.to_string(),
            Some(other) => return Err(CredentialError::ExecInfo(format!("unsupported apiVersion {other:?}"))),
        };
        Ok(ExecInfo { api_version, interactive: info.spec.interactive })
    }
}

/// The `ExecCredential` kubectl reads on stdout: the bearer token and when it expires
/// (`expirationTimestamp`, RFC 3339), after which kubectl runs the plugin again.
pub fn exec_credential(api_version: &str, token: &str, expires_at: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": token,
            "expirationTimestamp": expires_at.round(jiff::Unit::Second).unwrap_or(expires_at).to_string(),
        },
    })
}

/// The subject token in a token command's output or a token file: a bare JWT (`az account
/// get-access-token --query accessToken -o tsv`), an `ExecCredential` (`kubelogin get-token`:
/// `status.token`), or a token response in JSON (`accessToken` as az prints it, OAuth's
/// `access_token`).
///
/// # Errors
/// [`CredentialError::NoToken`] when there is none; `from` names the source in the message.
pub fn subject_token(output: &str, from: &str) -> Result<String, CredentialError> {
    let output = output.trim();
    let no_token = || CredentialError::NoToken { from: from.to_string() };
    if output.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(output).map_err(|_| no_token())?;
        let token = json
            .pointer("/status/token")
            .or_else(|| json.get("accessToken"))
            .or_else(|| json.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(no_token)?;
        return Ok(token.to_string());
    }
    // One line with no blanks: anything else is a message, not a token.
    if output.is_empty() || output.contains(char::is_whitespace) {
        return Err(no_token());
    }
    Ok(output.to_string())
}

/// The claims of a JWT this plugin reads, without verifying it (the broker verifies): who it
/// names, for the cache key, and when it expires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: Option<String>,
    /// Subject.
    pub sub: Option<String>,
    /// Entra ID's tenant ID.
    pub tid: Option<String>,
    /// Entra ID's object ID of the principal.
    pub oid: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: Option<i64>,
}

impl Claims {
    /// The claims of a compact JWT (`header.payload.signature`, base64url).
    ///
    /// # Errors
    /// A message saying which part is malformed.
    pub fn of(jwt: &str) -> Result<Self, String> {
        let mut parts = jwt.split('.');
        let (Some(_header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not three dot-separated parts".into());
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| format!("payload is not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("payload is not JSON claims: {e}"))
    }

    /// The identity the token names: `<tid>:<oid>` for Entra ID (the projected user name of
    /// docs/roles.md), else `<iss> <sub>`.
    ///
    /// # Errors
    /// A message when the token names neither.
    pub fn subject(&self) -> Result<String, String> {
        match (&self.tid, &self.oid, &self.iss, &self.sub) {
            (Some(tid), Some(oid), _, _) => Ok(format!("{tid}:{oid}")),
            (_, _, Some(iss), Some(sub)) => Ok(format!("{iss} {sub}")),
            _ => Err("no tid and oid, nor iss and sub".into()),
        }
    }

    /// The expiry as a timestamp.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.exp.and_then(|s| Timestamp::from_second(s).ok())
    }
}

/// A token the broker issued, as cached: for which broker, audience and identity, and until
/// when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedToken {
    /// The broker's issuer URL, as configured.
    pub broker: String,
    /// The audience requested, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The identity of the subject token it was exchanged for ([`Claims::subject`]).
    pub subject: String,
    /// The issued token.
    pub token: String,
    /// When it expires.
    pub expires_at: Timestamp,
}

impl CachedToken {
    /// Whether it serves `broker`, `audience` and `subject`, with more than
    /// [`REFRESH_MARGIN`] left at `now`.
    pub fn serves(&self, broker: &str, audience: Option<&str>, subject: &str, now: Timestamp) -> bool {
        self.broker == broker
            && self.audience.as_deref() == audience
            && self.subject == subject
            && now.saturating_add(REFRESH_MARGIN).is_ok_and(|soon| soon < self.expires_at)
    }
}

/// The cache file of one broker, audience and identity: a SHA-256 of the three, so that no
/// identity or URL appears in a file name and none can escape the directory.
pub fn cache_file_name(broker: &str, audience: Option<&str>, subject: &str) -> String {
    let mut hash = Sha256::new();
    for part in [broker, audience.unwrap_or(""), subject] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

/// The default cache directory: `kube-lighthouse/credentials` under the user's cache
/// directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS,
/// `%LOCALAPPDATA%` on Windows).
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("kube-lighthouse").join("credentials"))
}

/// Reads a cache file; None when it is missing or unreadable (a broken cache only costs an
/// exchange).
pub fn read_cache(path: &Path) -> Option<CachedToken> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes a cache file readable by the user alone (directory 0700, file 0600 on Unix),
/// through a temporary file and a rename so a concurrent kubectl never reads half of it.
///
/// # Errors
/// The I/O error.
pub fn write_cache(path: &Path, entry: &CachedToken) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("cache path has no directory"))?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let text = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    let temporary =
        dir.join(format!(".{}.{}", std::process::id(), path.file_name().and_then(|n| n.to_str()).unwrap_or("cache")));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(&text)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(())
}

/// Runs the token command through the platform's shell (`sh -c`, `cmd /C` on Windows), its
/// stderr passed through (kubelogin's device-code prompt reaches the engineer) and stdin only
/// when kubectl says a terminal is there.
///
/// # Errors
/// [`CredentialError::CommandStart`] or [`CredentialError::CommandFailed`].
async fn run_token_command(command: &str, interactive: bool) -> Result<String, CredentialError> {
    let mut process = if cfg!(windows) {
        let mut c = tokio::process::Command::new("cmd");
        c.arg("/C").arg(command);
        c
    } else {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(command);
        c
    };
    process
        .stdin(if interactive { Stdio::inherit() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let output = process
        .output()
        .await
        .map_err(|source| CredentialError::CommandStart { command: command.to_string(), source })?;
    if !output.status.success() {
        return Err(CredentialError::CommandFailed { command: command.to_string(), status: output.status.to_string() });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The subject token as the arguments say: from `--token-command` or `--token-file`.
async fn obtain_subject_token(args: &CredentialArgs, interactive: bool) -> Result<String, CredentialError> {
    match (&args.token_command, &args.token_file) {
        (Some(command), _) => {
            let output = run_token_command(command, interactive).await?;
            subject_token(&output, &format!("the token command {command:?}"))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| CredentialError::TokenFile { path: path.display().to_string(), source })?;
            subject_token(&text, &format!("the token file {}", path.display()))
        }
        // clap requires one of the two.
        (None, None) => Err(CredentialError::NoToken { from: "no --token-command or --token-file".into() }),
    }
}

/// `credential`: prints an `ExecCredential` with a token of the broker's issuer for the
/// engineer's own token, from the cache while it is fresh.
///
/// # Errors
/// [`PluginError::Credential`] with what to check (the token command, the broker's URL and
/// certificate, the audience and the delegations).
pub async fn run(args: &CredentialArgs, out: &mut dyn Write) -> Result<(), PluginError> {
    let info = ExecInfo::parse(std::env::var("KUBERNETES_EXEC_INFO").ok().as_deref())?;
    let broker_url = broker::issuer_url(&args.broker).map_err(CredentialError::from)?;
    let token = obtain_subject_token(args, info.interactive).await?;
    let from = if args.token_command.is_some() { "the token command" } else { "the token file" };
    let claims = Claims::of(&token).map_err(|reason| CredentialError::NotAJwt { from: from.into(), reason })?;
    let subject = claims.subject().map_err(|reason| CredentialError::NotAJwt { from: from.into(), reason })?;
    let audience = args.audience.as_deref();
    let cache = if args.no_cache {
        None
    } else {
        let dir = args.cache_dir.clone().or_else(default_cache_dir).ok_or(CredentialError::NoCacheDir)?;
        Some(dir.join(cache_file_name(&broker_url, audience, &subject)))
    };
    let now = Timestamp::now();
    if let Some(cached) = cache.as_deref().and_then(read_cache) {
        if cached.serves(&broker_url, audience, &subject, now) {
            return print(out, &info, &cached.token, cached.expires_at);
        }
    }
    let client = broker::Client::new(args.certificate_authority.as_deref()).map_err(CredentialError::from)?;
    let endpoint = client.token_endpoint(&broker_url).await.map_err(CredentialError::from)?;
    let issued = client.exchange(&endpoint, &token, audience).await.map_err(CredentialError::from)?;
    let expires_at = issued.expires_at(now);
    if let Some(path) = &cache {
        let entry = CachedToken {
            broker: broker_url.clone(),
            audience: args.audience.clone(),
            subject,
            token: issued.access_token.clone(),
            expires_at,
        };
        if let Err(e) = write_cache(path, &entry) {
            // The credential is good; only the next call pays another exchange.
            eprintln!("warning: could not cache the credential in {}: {e}", path.display());
        }
    }
    print(out, &info, &issued.access_token, expires_at)
}

fn print(out: &mut dyn Write, info: &ExecInfo, token: &str, expires_at: Timestamp) -> Result<(), PluginError> {
    let credential = exec_credential(&info.api_version, token, expires_at);
    serde_json::to_writer(&mut *out, &credential).map_err(|e| PluginError::Encode(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.{}", b64(br#"{"alg":"RS256","kid":"k"}"#), b64(claims.to_string().as_bytes()), b64(b"sig"))
    }

    #[test]
    fn exec_info_defaults_to_v1_interactive_and_follows_kubectl() {
        assert_eq!(
            ExecInfo::parse(None).expect("none"),
            ExecInfo { api_version: EXEC_API_V1.into(), interactive: true }
        );
        let v1beta1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
        assert_eq!(
            ExecInfo::parse(Some(v1beta1)).expect("v1beta1"),
            ExecInfo { api_version: EXEC_API_V1BETA1.into(), interactive: false }
        );
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true,"cluster":{"server":"https://x"}}}"#;
        assert!(ExecInfo::parse(Some(v1)).expect("v1").interactive);
        // client-go omits `interactive` when false.
        let quiet = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{}}"#;
        assert!(!ExecInfo::parse(Some(quiet)).expect("v1").interactive);
        for bad in ["not json", r#"{"kind":"Pod"}"#, r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#] {
            let err = ExecInfo::parse(Some(bad)).expect_err(bad);
            assert!(err.to_string().contains("KUBERNETES_EXEC_INFO"), "{err}");
        }
    }

    #[test]
    fn the_exec_credential_carries_token_and_expiry() {
        let at: Timestamp = "2026-12-07T06:15:30.250Z".parse().expect("ts");
        let credential = exec_credential(EXEC_API_V1, "T", at);
        assert_eq!(
            credential,
            serde_json::json!({
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {"token": "T", "expirationTimestamp": "2026-12-07T06:15:30Z"},
            })
        );
        assert_eq!(exec_credential(EXEC_API_V1BETA1, "T", at)["apiVersion"], EXEC_API_V1BETA1);
    }

    #[test]
    fn the_subject_token_comes_from_a_jwt_an_exec_credential_or_az_json() {
        let t = jwt(serde_json::json!({"tid": "t", "oid": "o"}));
        assert_eq!(subject_token(&format!("{t}\n"), "x").expect("bare"), t);
        let kubelogin = serde_json::json!({"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1",
            "spec": {"interactive": false}, "status": {"expirationTimestamp": "2026-12-07T06:15:30Z", "token": t}});
        assert_eq!(subject_token(&kubelogin.to_string(), "x").expect("exec credential"), t);
        let az = serde_json::json!({"accessToken": t, "expiresOn": "2026-12-07 06:15:30.000000", "tenant": "t"});
        assert_eq!(subject_token(&az.to_string(), "x").expect("az"), t);
        let oauth = serde_json::json!({"access_token": t, "token_type": "Bearer"});
        assert_eq!(subject_token(&oauth.to_string(), "x").expect("oauth"), t);
        for bad in ["", "  \n", "To sign in, use a web browser to open the page", "{}", "{\"status\":{}}", "{not json"]
        {
            let err = subject_token(bad, "the token command \"c\"").expect_err(bad);
            assert!(err.to_string().starts_with("the token command \"c\" gave no token"), "{err}");
        }
    }

    #[test]
    fn claims_name_the_entra_identity_or_issuer_and_subject() {
        let entra = Claims::of(&jwt(serde_json::json!({"iss": "https://login.microsoftonline.com/t/v2.0",
            "sub": "pairwise", "tid": "t", "oid": "o", "exp": 1_800_000_000})))
        .expect("claims");
        assert_eq!(entra.subject().expect("subject"), "t:o");
        assert_eq!(entra.expires_at(), Timestamp::from_second(1_800_000_000).ok());
        let other = Claims::of(&jwt(serde_json::json!({"iss": "https://idp", "sub": "alice"}))).expect("claims");
        assert_eq!(other.subject().expect("subject"), "https://idp alice");
        assert!(Claims::of(&jwt(serde_json::json!({"aud": "x"}))).expect("claims").subject().is_err());
        assert!(Claims::of("a.b").is_err());
        assert!(Claims::of("a.b.c.d").is_err());
        assert!(Claims::of("a.!!!.c").expect_err("b64").contains("base64url"));
        let not_json = format!("a.{}.c", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"[1]"));
        assert!(Claims::of(&not_json).expect_err("json").contains("JSON"));
    }

    #[test]
    fn a_cached_token_serves_its_broker_audience_and_identity_until_shortly_before_expiry() {
        let now: Timestamp = "2026-12-07T06:00:00Z".parse().expect("ts");
        let entry = CachedToken {
            broker: "https://b/federation".into(),
            audience: None,
            subject: "t:o".into(),
            token: "T".into(),
            expires_at: now + SignedDuration::from_secs(600),
        };
        assert!(entry.serves("https://b/federation", None, "t:o", now));
        assert!(!entry.serves("https://b/federation", None, "t:other", now), "another identity");
        assert!(!entry.serves("https://c/federation", None, "t:o", now), "another broker");
        assert!(!entry.serves("https://b/federation", Some("a"), "t:o", now), "another audience");
        let late = entry.expires_at - SignedDuration::from_secs(60);
        assert!(!entry.serves("https://b/federation", None, "t:o", late), "within the margin");
        assert!(entry.serves("https://b/federation", None, "t:o", late - SignedDuration::from_secs(1)));
        assert!(!entry.serves("https://b/federation", None, "t:o", entry.expires_at), "expired");
    }

    #[test]
    fn cache_files_are_per_broker_audience_and_identity_and_name_nothing() {
        let a = cache_file_name("https://b/federation", None, "t:o");
        assert_eq!(a, cache_file_name("https://b/federation", None, "t:o"), "stable");
        assert_ne!(a, cache_file_name("https://b/federation", None, "t:p"));
        assert_ne!(a, cache_file_name("https://c/federation", None, "t:o"));
        assert_ne!(a, cache_file_name("https://b/federation", Some("x"), "t:o"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(cache_file_name("ab", None, "c"), cache_file_name("a", None, "bc"));
        assert!(a.ends_with(".json") && a.len() == 64 + 5 && !a.contains('/'), "{a}");
    }

    #[test]
    fn the_cache_round_trips_readable_by_the_user_alone() {
        let dir = std::env::temp_dir().join(format!("kl-credential-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join(cache_file_name("https://b", None, "t:o"));
        assert_eq!(read_cache(&path), None, "missing is a miss");
        let entry = CachedToken {
            broker: "https://b".into(),
            audience: Some("kube-lighthouse".into()),
            subject: "t:o".into(),
            token: "T".into(),
            expires_at: "2026-12-07T06:15:00Z".parse().expect("ts"),
        };
        write_cache(&path, &entry).expect("write");
        assert_eq!(read_cache(&path), Some(entry.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().expect("dir")), 0o700);
        }
        let newer = CachedToken { token: "U".into(), ..entry };
        write_cache(&path, &newer).expect("overwrite");
        assert_eq!(read_cache(&path).map(|e| e.token), Some("U".into()));
        let leftovers = std::fs::read_dir(path.parent().expect("dir")).expect("ls").count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
        std::fs::write(&path, "{broken").expect("corrupt");
        assert_eq!(read_cache(&path), None, "a broken cache is a miss");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn the_token_command_runs_in_a_shell_and_its_failure_is_named() {
        let t = jwt(serde_json::json!({"tid": "t", "oid": "o"}));
        let args = CredentialArgs {
            broker: "https://b".into(),
            token_command: Some(format!("printf '%s' '{{\"status\":{{\"token\":\"{t}\"}}}}'")),
            ..Default::default()
        };
        assert_eq!(obtain_subject_token(&args, false).await.expect("token"), t);
        let failing = CredentialArgs { token_command: Some("echo nope >&2; exit 3".into()), ..args.clone() };
        let err = obtain_subject_token(&failing, false).await.expect_err("fails");
        assert!(err.to_string().contains("failed (exit status: 3)"), "{err}");
        let dir = std::env::temp_dir().join(format!("kl-credential-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, format!("{t}\n")).expect("write");
        let from_file = CredentialArgs { token_command: None, token_file: Some(file.clone()), ..args };
        assert_eq!(obtain_subject_token(&from_file, false).await.expect("file"), t);
        let missing = CredentialArgs { token_file: Some(dir.join("missing")), ..from_file };
        assert!(obtain_subject_token(&missing, false).await.expect_err("missing").to_string().contains("token file"));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A broker on loopback HTTP that counts exchanges and answers as the contract says; it
    /// tests the requests and the cache, not access (that is tests/sign_in_broker.rs).
    async fn fake_broker(refuse: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use axum::routing::{get, post};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}/federation", listener.local_addr().expect("addr"));
        let exchanges = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = exchanges.clone();
        let doc = serde_json::json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token"),
            "grant_types_supported": [super::broker::TOKEN_EXCHANGE_GRANT]});
        let router = axum::Router::new()
            .route("/federation/.well-known/openid-configuration", get(move || async move { axum::Json(doc) }))
            .route(
                "/federation/token",
                post(move |body: String| async move {
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    let form: std::collections::HashMap<String, String> =
                        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let subject = Claims::of(&form["subject_token"]).expect("claims").subject().expect("subject");
                    if refuse || form["grant_type"] != super::broker::TOKEN_EXCHANGE_GRANT {
                        return (
                            http::StatusCode::BAD_REQUEST,
                            axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "the subject token is not accepted"})),
                        );
                    }
                    let exp = Timestamp::now().as_second() + 900;
                    let token = jwt(serde_json::json!({"sub": subject, "exp": exp, "n": n}));
                    (http::StatusCode::OK, axum::Json(serde_json::json!({"access_token": token, "expires_in": 900,
                        "issued_token_type": super::broker::JWT_TOKEN_TYPE, "token_type": "N_A"})))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        (issuer, exchanges)
    }

    #[tokio::test]
    async fn a_credential_is_exchanged_once_per_identity_then_served_from_the_cache() {
        use std::sync::atomic::Ordering;
        let (issuer, exchanges) = fake_broker(false).await;
        let dir = std::env::temp_dir().join(format!("kl-credential-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let token_file = dir.join("token");
        let alice = jwt(serde_json::json!({"tid": "t", "oid": "alice", "exp": Timestamp::now().as_second() + 3600}));
        std::fs::write(&token_file, &alice).expect("write");
        let args = CredentialArgs {
            broker: issuer.clone(),
            token_file: Some(token_file.clone()),
            cache_dir: Some(dir.join("cache")),
            ..Default::default()
        };
        let call = |args: CredentialArgs| async move {
            let mut out = Vec::new();
            run(&args, &mut out).await.expect("credential");
            serde_json::from_slice::<serde_json::Value>(&out).expect("an ExecCredential")
        };
        let first = call(args.clone()).await;
        assert_eq!(first["kind"], "ExecCredential");
        assert_eq!(first["apiVersion"], EXEC_API_V1);
        let token = first["status"]["token"].as_str().expect("token").to_string();
        assert_eq!(Claims::of(&token).expect("claims").sub.as_deref(), Some("t:alice"));
        let expiry: Timestamp =
            first["status"]["expirationTimestamp"].as_str().expect("expiry").parse().expect("rfc3339");
        assert!(expiry > Timestamp::now() + SignedDuration::from_secs(800), "{expiry}");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
        let second = call(args.clone()).await;
        assert_eq!(second["status"]["token"], token.as_str(), "served from the cache");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1, "no second exchange");
        // Another identity behind the same command gets its own token.
        std::fs::write(&token_file, jwt(serde_json::json!({"tid": "t", "oid": "bob"}))).expect("write");
        let bob = call(args.clone()).await;
        assert_eq!(
            Claims::of(bob["status"]["token"].as_str().expect("token")).expect("claims").sub.as_deref(),
            Some("t:bob")
        );
        assert_eq!(exchanges.load(Ordering::SeqCst), 2);
        let uncached = call(CredentialArgs { no_cache: true, ..args.clone() }).await;
        assert_ne!(uncached["status"]["token"], bob["status"]["token"], "--no-cache exchanges again");
        assert_eq!(exchanges.load(Ordering::SeqCst), 3);

        let (refusing, _) = fake_broker(true).await;
        let refused = CredentialArgs { broker: refusing, ..args };
        let err = run(&refused, &mut Vec::new()).await.expect_err("refused").to_string();
        assert!(err.contains("the broker refused your token") && err.contains("delegation"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
