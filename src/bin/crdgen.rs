//! Writes the CustomResourceDefinitions to `crds/` (or prints them with `--stdout`).
//! `tests/crds_current.rs` fails when the committed YAML is stale.

fn main() -> std::process::ExitCode {
    let stdout = std::env::args().any(|a| a == "--stdout");
    for (file, yaml) in kube_lighthouse::api::crd_yaml() {
        if stdout {
            print!("---\n{yaml}");
        } else if let Err(e) = std::fs::write(format!("crds/{file}"), yaml) {
            eprintln!("crdgen: cannot write crds/{file}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
