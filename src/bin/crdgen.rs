//! Writes the CustomResourceDefinitions to `crds/` and the chart's `crds/` (or prints them
//! with `--stdout`), and docs/reference.md, which is generated from the same types
//! ([`kube_lighthouse::reference`]).
//! `tests/crds_current.rs` and `tests/reference_current.rs` fail when the committed files are stale.

fn main() -> std::process::ExitCode {
    let stdout = std::env::args().any(|a| a == "--stdout");
    for (file, yaml) in kube_lighthouse::api::crd_yaml() {
        if stdout {
            print!("---\n{yaml}");
        } else {
            // The chart ships the same files: helm installs charts/*/crds/ on install.
            for dir in ["crds", "charts/kube-lighthouse/crds"] {
                if let Err(e) = std::fs::write(format!("{dir}/{file}"), &yaml) {
                    eprintln!("crdgen: cannot write {dir}/{file}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    }
    if !stdout {
        if let Err(e) = std::fs::write("docs/reference.md", kube_lighthouse::reference::markdown()) {
            eprintln!("crdgen: cannot write docs/reference.md: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
