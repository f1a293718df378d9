//! Test harness: a real API server (the local control plane, or any cluster named by
//! `KL_TEST_KUBECONFIG`), the controller running in this process, and access checked the way
//! the API server itself decides it: SubjectAccessReview.
//!
//! Managing-tenant identities also sign in for real: [`expect_access`] repeats each check
//! with a token of the identity's own tenant, minted by the local issuers the control plane
//! trusts (SPEC §2).
//!
//! A test that needs a cluster is marked `#[ignore = "needs a cluster: hack/test.sh runs it"]`
//! ([`NEEDS_A_CLUSTER`] says the same): plain `cargo test` reports it as ignored, never as
//! passed, and `hack/test.sh` runs it with `-- --include-ignored`. Run that way without a
//! reachable cluster, it fails saying why.
//!
//! | module | owns |
//! |---|---|
//! | [`cluster`] | the test cluster, its admin client, the controller in this process or as a subprocess, commands run against it |
//! | [`sign_in`] | identities: impersonation, ServiceAccount tokens, managing-tenant tokens from the local issuers |
//! | [`access`] | what an identity may do: SubjectAccessReview and the identity's own real requests |
//! | [`fixtures`] | names, tenants, namespaces and delegations a test creates |
//! | [`wait`] | polling until something holds, and reading what the controller reported |
//! | [`webhook`] | the admission webhook served by the real binary and registered with the API server |
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

pub mod access;
pub mod cluster;
pub mod fixtures;
pub mod sign_in;
pub mod views;
pub mod wait;
pub mod webhook;

pub use access::*;
pub use cluster::*;
pub use fixtures::*;
pub use sign_in::*;
pub use wait::*;

/// The reason every cluster test is ignored by plain `cargo test`; keep the `#[ignore]`
/// attributes spelled the same.
pub const NEEDS_A_CLUSTER: &str = "needs a cluster: hack/test.sh runs it";

/// The kubectl plugin's binary, `kubectl-lighthouse`: built by its own crate
/// (`crates/plugin`) into the same target directory as the controller's, so it is found next
/// to it. `cargo test --workspace` (hack/test.sh) builds both; a test run of this package
/// alone needs `cargo build -p kubectl-lighthouse` first, and says so.
///
/// # Panics
/// When the binary is not there.
pub fn plugin_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_kube-lighthouse")).with_file_name("kubectl-lighthouse");
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p kubectl-lighthouse` (or `cargo test --workspace`)",
        path.display()
    );
    path
}
