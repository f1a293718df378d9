//! `kubectl lighthouse` (SPEC §11): the plugin binary's logic, one module per command.
//!
//! The plugin talks to the API server with kube's client and this crate's API types, never by
//! running kubectl. What it decides or prints is pure and unit-tested: [`cli`] (the command
//! line), [`manifest`] (objects from flags), [`output`] (tables, YAML/JSON, names), and the
//! report builders of each command module; the command modules only fetch, call and print.
//!
//! Exit codes: 0 success, 1 failure (message on stderr), 2 usage error (from clap).

use std::io::Write;

use thiserror::Error;

pub mod access;
pub mod activation;
pub mod broker;
pub mod cli;
pub mod client;
pub mod complete;
pub mod credential;
pub mod definition;
pub mod fleet;
pub mod import;
pub mod login;
pub mod manifest;
pub mod output;
pub mod policy;
pub mod providers;
pub mod views;
pub mod whoami;

use cli::{Cli, Command};

/// Field manager of the plugin's server-side applies.
pub const FIELD_MANAGER: &str = "kubectl-lighthouse";

/// Why a command failed.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster configuration was found.
    #[error("no cluster configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The API server refused or failed a request.
    #[error("{0}")]
    Api(String),
    /// A flag that does not describe an object.
    #[error(transparent)]
    Flag(#[from] manifest::FlagError),
    /// The views API (SPEC §10) is not served on this cluster.
    #[error(
        "the views API view.kubelighthouse.io/v1alpha1 is not served here ({0}); is kube-lighthouse's APIService installed?"
    )]
    ViewsUnavailable(String),
    /// A named object does not exist (or is not visible to the caller).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// Kind, e.g. `customer`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// Output could not be encoded.
    #[error("encoding output: {0}")]
    Encode(String),
    /// Reading the confirmation or writing output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A command-line combination that cannot work (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A template that does not import: every reason, each naming the template path and field.
    #[error(transparent)]
    Import(#[from] kube_lighthouse_core::azure::ImportErrors),
    /// A file that cannot be read.
    #[error("{path}: {source}")]
    ReadFile {
        /// The path as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The API server refused objects (admission, validation): one line each.
    #[error("nothing imported: the server refused {}:\n  {}", .0.len(), .0.join("\n  "))]
    Refused(Vec<String>),
    /// Sign-in through the broker failed (`credential`, `login`): the message says what to check.
    #[error("{0}")]
    Credential(String),
    /// `use CLUSTER/NAMESPACE` wrote nothing: the message says why (docs/fleet.md).
    #[error("{0}")]
    Fleet(String),
    /// The user did not confirm a deletion.
    #[error("aborted: nothing was deleted")]
    Aborted,
}

impl From<kube::Error> for PluginError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => PluginError::Api(format!(
                "the server said: {} ({}{})",
                status.message,
                status.reason,
                if status.code > 0 { format!(", {}", status.code) } else { String::new() }
            )),
            other => PluginError::Api(other.to_string()),
        }
    }
}

impl PluginError {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            PluginError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Whether a kube error is the API server's 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is the API server's 403.
pub fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// Runs one command line, writing its output to `out`.
///
/// # Errors
/// [`PluginError`]: the message goes to stderr and [`PluginError::exit_code`] is the exit code.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), PluginError> {
    let global = &cli.global;
    match cli.command {
        Command::Version => {
            // The package version: Cargo.toml is the one place a release's version is written
            // (hack/release.sh checks the built plugin prints it).
            writeln!(out, "{}", env!("CARGO_PKG_VERSION"))?;
            Ok(())
        }
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "kubectl-lighthouse", &mut script);
            out.write_all(&script)?;
            Ok(())
        }
        Command::Whoami => whoami::run(global, out).await,
        Command::Customers { name, fleet } => views::customers(global, name.as_deref(), fleet, out).await,
        Command::Delegations { name, fleet } => views::delegations(global, name.as_deref(), fleet, out).await,
        Command::Use(args) => fleet::use_cluster(global, &args, out).await,
        Command::Providers => providers::run(global, out).await,
        Command::Policy => policy::run(global, out).await,
        Command::Definition(command) => definition::definition(global, command, out).await,
        Command::Assignment(command) => definition::assignment(global, command, out).await,
        Command::Access(args) => access::run(global, &args, out).await,
        Command::Import(args) => import::run(global, &args, out).await,
        Command::Eligible => activation::eligible(global, out).await,
        Command::Activate(args) => activation::activate(global, &args, out).await,
        Command::Requests(args) => activation::requests(global, &args, out).await,
        Command::Approve(args) => {
            activation::review(global, &args, kube_lighthouse_core::api::Decision::Approve, out).await
        }
        Command::Deny(args) => activation::review(global, &args, kube_lighthouse_core::api::Decision::Deny, out).await,
        Command::Deactivate { name } => activation::deactivate(global, &name, out).await,
        Command::Credential(args) => credential::run(&args, out).await,
        Command::Login(args) => login::run(global, &args, out).await,
    }
}
