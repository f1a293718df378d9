//! `kl-token-issuer`: command line for the local Entra-ID-like issuers — `init` a directory,
//! `serve` discovery and JWKS from it, print a `token`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kl_token_issuer::{parse_lifetime, Error, Issuer, TokenRequest, DEFAULT_LIFETIME};
use tracing_subscriber::EnvFilter;

/// Local JWT issuer standing in for an Entra ID tenant (kube-lighthouse's local control plane).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (or overwrite) an issuer directory: CA, serving certificate, signing key, issuer.json.
    Init {
        /// The issuer directory (created with mode 0700).
        #[arg(long)]
        dir: PathBuf,
        /// The tenant ID this issuer speaks for (the `tid` claim).
        #[arg(long)]
        tenant: String,
        /// The issuer URL, `https://127.0.0.1:PORT/<tenant>/v2.0` (the `iss` claim).
        #[arg(long)]
        url: String,
        /// The `aud` claim of minted tokens.
        #[arg(long)]
        audience: String,
    },
    /// Serve OIDC discovery and the JWKS over HTTPS on 127.0.0.1 until SIGTERM or Ctrl-C.
    Serve {
        /// The issuer directory; repeat to serve several issuers of the same port on it (the
        /// first one's serving certificate is presented).
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
    },
    /// Print one signed token on stdout.
    Token {
        /// The issuer directory.
        #[arg(long)]
        dir: PathBuf,
        /// The user's object ID (`oid` and `sub`).
        #[arg(long)]
        oid: String,
        /// A group object ID; repeat for more.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// An authentication method, e.g. pwd, mfa; repeat for more [default: pwd].
        #[arg(long = "amr")]
        amr: Vec<String>,
        /// Time from issue to expiry: 90s, 30m, 1h, 1h30m [default: 1h].
        #[arg(long, value_parser = lifetime)]
        lifetime: Option<Duration>,
        /// Make the token expired (iat two hours ago, exp one hour ago).
        #[arg(long)]
        expired: bool,
        /// Sign with a fresh key that is not in the JWKS (same kid).
        #[arg(long)]
        unknown_key: bool,
        /// Put this tenant in `tid` instead of the issuer's.
        #[arg(long)]
        tid: Option<String>,
        /// Put this in `aud` instead of the issuer's audience.
        #[arg(long)]
        audience: Option<String>,
    },
}

fn lifetime(text: &str) -> Result<Duration, String> {
    parse_lifetime(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kl-token-issuer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Init { dir, tenant, url, audience } => {
            let issuer = Issuer::init(&dir, &tenant, &url, &audience)?;
            tracing::info!(dir = %dir.display(), issuer = issuer.url(), kid = issuer.kid(), "initialized");
            Ok(())
        }
        Command::Serve { dir } => {
            let issuers = dir.iter().map(|d| Issuer::load(d)).collect::<Result<Vec<_>, _>>()?;
            let first = dir.first().cloned().unwrap_or_default();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io { path: first.clone(), source })?;
            runtime.block_on(async {
                let stop = stop_signal().map_err(|source| Error::Io { path: first.clone(), source })?;
                kl_token_issuer::serve_all(&issuers, stop).await
            })
        }
        Command::Token { dir, oid, groups, amr, lifetime, expired, unknown_key, tid, audience } => {
            let issuer = Issuer::load(&dir)?;
            let mut request = TokenRequest::new(oid).groups(groups).lifetime(lifetime.unwrap_or(DEFAULT_LIFETIME));
            if !amr.is_empty() {
                request = request.amr(amr);
            }
            request.expired = expired;
            request.unknown_key = unknown_key;
            request.tid_override = tid;
            request.audience_override = audience;
            println!("{}", issuer.mint(&request)?);
            Ok(())
        }
    }
}

/// Completes on the first SIGTERM or SIGINT. Installed before serving starts, so a signal
/// that arrives early is not lost.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}
