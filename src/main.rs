//! `kube-lighthouse`: with no arguments, reconciles the cluster of the current kubeconfig
//! (or the in-cluster config) with the SPEC's defaults.

use clap::Parser;
use kube_lighthouse::config::Config;
use kube_lighthouse::telemetry;
use tracing::error;

/// jemalloc: against glibc's malloc it cut the peak RSS at 5000 delegations by a tenth and
/// the start-up CPU by a third (docs/benchmarks.md). The `system-allocator` feature leaves it
/// out, for heaptrack.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Pages freed after the start-up lists go back to the system within a second rather than
/// ten; `_RJEM_MALLOC_CONF` still overrides this.
#[cfg(not(feature = "system-allocator"))]
// jemalloc reads this symbol by name at start-up: the one exported symbol of the project, so
// the one exception to the workspace's `unsafe_code = "deny"`.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
    match kube_lighthouse::run(client, &config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "controller failed");
            std::process::ExitCode::FAILURE
        }
    }
}
