//! `kube-lighthouse`: with no arguments, reconciles the cluster of the current kubeconfig
//! (or the in-cluster config) with the SPEC's defaults.

use clap::Parser;
use kube_lighthouse::config::Config;
use kube_lighthouse::{controller, telemetry};
use tracing::error;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    telemetry::init(config.log_format, &config.log_level);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "no Kubernetes configuration: set KUBECONFIG or run in a cluster");
            return std::process::ExitCode::FAILURE;
        }
    };
    match controller::run(client, &config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "controller failed");
            std::process::ExitCode::FAILURE
        }
    }
}
