//! `kubectl-lighthouse`: the kubectl plugin of kube-lighthouse (SPEC §11). Install it on the
//! PATH and run `kubectl lighthouse …`. The logic lives in [`kubectl_lighthouse`].

use clap::Parser;
use kubectl_lighthouse::{self as plugin, cli::Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Usage errors exit 2 (clap), help and version 0.
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match plugin::run(cli, &mut stdout).await {
        Ok(()) => {}
        // The reader went away (`… | head`): stop quietly, as kubectl does.
        Err(plugin::PluginError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
